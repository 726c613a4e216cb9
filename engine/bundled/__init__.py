"""Bundled defaults: a synthetic sample series and the default grid."""
