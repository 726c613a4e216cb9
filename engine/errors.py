"""The exceptions the engine raises; each message names what is wrong and where."""


class LabelerError(Exception):
    """Base class of every error the engine reports to its callers."""


class DataError(LabelerError):
    """The input bars (or events, sides, fine path) are unusable as given."""


class GridError(LabelerError):
    """A grid file or a label configuration is invalid."""


class DeviceError(LabelerError):
    """The requested device cannot run here; the message says why and what to do."""


class OutputError(LabelerError):
    """The output folder cannot be written, or is held by another run."""
