"""The comparison side of nnunet-archs: profile (cost), compare (trained Dice), demo."""
