"""The ExternalSource API: names, reasons, durations, validation and the CRD.

Everything a user can write or read in an ExternalSource is defined here once,
so the controller, `externalsource validate` and the CRD agree.
"""
