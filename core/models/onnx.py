"""--backend onnx: the model's exported graph (fp32, or int8 with --quantize)
run by onnxruntime on the CPU, all graph optimisations on. One session serves
every lane (its run is thread-safe and releases the GIL); each run stays on
the calling thread."""
from __future__ import annotations

from vecpipe.core.models.base import register
from vecpipe.core.models.exported import ExportedEncoder


@register("onnx")
class OnnxEncoder(ExportedEncoder):
    backend = "onnx"
    modules = ("onnxruntime", "onnx")

    def _open(self, path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1  # the lanes are the parallelism (ExportedEncoder.lanes)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _run(self, feeds):
        return self.session.run(None, feeds)[0]
