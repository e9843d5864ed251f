"""--backend openvino: the model's exported ONNX graph (the same cached file
as --backend onnx, int8 included) compiled by OpenVINO for the CPU, in fp32
(OpenVINO would otherwise pick bf16 on CPUs that have it, and the vectors
would no longer be the model's). One stream per lane, one thread each, and
an infer request per lane thread (a request serves one thread at a time)."""
from __future__ import annotations

import threading

from vecpipe.core.models.base import register
from vecpipe.core.models.exported import ExportedEncoder


@register("openvino")
class OpenVinoEncoder(ExportedEncoder):
    backend = "openvino"
    modules = ("openvino", "onnx")

    def _open(self, path):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": self.lanes, "INFERENCE_NUM_THREADS": self.lanes}
        self._requests = threading.local()
        self._first = threading.Lock()
        self._warm = False
        return core.compile_model(core.read_model(str(path)), "CPU", config)

    def _run(self, feeds):
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.session.create_infer_request()
        if not self._warm:
            # The first infer of a process runs alone: two lanes entering it at
            # once can deadlock in OpenVINO's bindings (a C++ static being set
            # up in one thread, the GIL held by the other; 3 hangs in 20 runs
            # of two threads on a tiny graph, openvino 2026.4), and then not even
            # SIGTERM ends the process.
            with self._first:
                out = request.infer(feeds)[0]
                self._warm = True
                return out
        return request.infer(feeds)[0]
