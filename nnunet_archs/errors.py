"""The errors a user of nnunet-archs can fix, in one family.

Every refusal of the user's input (an unknown network, a calibration that does not fit, a study asked for with
other settings, a bad flag) raises a :class:`UserError` or a subclass where it is detected, in the domain object
that owns the rule. The command line catches it once and prints it as one line with exit status 2; Python callers
catch it as the ``ValueError`` it also is.
"""


class UserError(ValueError):
    """Input the user can fix; the message names the parameter and what is allowed."""


class StudyIncomplete(Exception):
    """Some of a study's jobs failed: the rest finished and the report says what is missing (exit status 1)."""
