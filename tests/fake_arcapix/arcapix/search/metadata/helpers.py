import json
import os


class Metadata:
    def __init__(self, id_, plugin):
        self.id_ = id_
        self.plugin = plugin

    def update(self, data):
        with open(os.environ["FAKE_ARCAPIX_OUT"], "a") as out:
            out.write(
                json.dumps({"id": self.id_, "namespace": self.plugin.namespace(), "data": data})
                + "\n"
            )
        return True
