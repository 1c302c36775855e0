"""Shared core of the pixstor-azure plugins.

One module per job, in the order data flows through them:
``settings`` -> ``images`` (path -> prepared image) -> ``http`` + ``customvision`` / ``vision``
(prepared image -> service response) -> ``fields`` / ``boxes`` (response -> fields) ->
``pixstor`` (fields -> store). ``runner`` ties them together for a plugin's ``process``.
"""

__version__ = "0.1.0"
