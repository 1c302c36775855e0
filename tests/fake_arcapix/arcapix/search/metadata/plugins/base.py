import enum
import logging


class PluginStatus(enum.Enum):
    SUCCESS = 0
    SKIPPED = 1
    ERRORED = 2
    FATAL = 3
    INPROGRESS = 4


class Plugin:
    def __init__(self):
        self.logger = logging.getLogger("arcapix.plugin." + type(self).__name__)

    def is_async(self):
        return False
