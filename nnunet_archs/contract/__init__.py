"""nnU-Net's contract for a network class, checked from inside the package (``nnunet-archs check``): one module
per concern, each check a function from a :class:`~nnunet_archs.contract.base.Subject` to a
:class:`~nnunet_archs.contract.base.CheckResult`; ``suite.run_contract`` runs them in order."""
