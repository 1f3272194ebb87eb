"""The one error type jaxnn raises for bad input, so callers and the CLI can tell it apart."""


class JaxnnError(ValueError):
  """Bad input to jaxnn: the message names the argument or file, what was expected and what was found."""


class DataError(JaxnnError):
  """A data file or data source is missing, malformed or inconsistent."""
