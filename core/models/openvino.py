"""--backend openvino: the model's exported ONNX graph (the same cached file
as --backend onnx, int8 included) compiled by OpenVINO for the CPU, in fp32
(OpenVINO would otherwise pick bf16 on CPUs that have it, and the vectors
would no longer be the model's)."""
from __future__ import annotations

from vecpipe.core.models.base import register
from vecpipe.core.models.exported import ExportedEncoder, cpu_threads


@register("openvino")
class OpenVinoEncoder(ExportedEncoder):
    backend = "openvino"
    modules = ("openvino", "onnx")

    def _open(self, path):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": cpu_threads()}
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request = compiled.create_infer_request()
        return compiled

    def _run(self, feeds):
        return self.request.infer(feeds)[0]
