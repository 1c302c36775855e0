"""Shared core of the pixstor-azure plugins, loaded as ``pixstor_azure``.

Each folder is one layer; a layer imports only from the layers below it (checked in CI by
import-linter, see ``setup.cfg``)::

    tool/        the pixstor-azure command: tag, show, search, draw, doctor (above them all)
    runner.py    what every plugin's process() does: fields, store, status, one log line
    services/    one module per backend that answers for a picture, beside base.py, their
                 contract, and registry.py, which chooses one from the settings
    answers/     the answer path: fetch (cache first), cache, faults, rate limit, offline
    http/        the Azure call: one POST with retries, waits and errors; knows no pictures
    images/      decode, prepare within a service's limits, scrub, formats; makes no calls
    ground/      settings, errors, runtime, clock, time budget, logging helpers, fields,
                 boxes, the PixStor adapter and our stand-in's store

The plugin files beside ``common/`` sit on top: plugin -> runner -> services.
"""

__version__ = "0.1.0"
