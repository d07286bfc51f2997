"""sparq from Python: compile ONNX models to small int8 ``.sparq`` files, run, time and evaluate them.

The four calls do what the ``sparq`` CLI's commands do, through the same code: options are the
CLI's flags as keyword arguments (``min_agreement=0.97`` is ``--min-agreement 0.97``), and a call
gives the same file and the same numbers as the command::

    import numpy as np, sparq
    crops = np.load("crops_224_nhwc_u8.npy")               # (N, 224, 224, 3) uint8
    m = sparq.compile("mobilenet_v2.onnx", calib=crops[:100],
                      mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    print(m.report)
    m.save("mobilenet_v2.sparq")
    s = sparq.Session("mobilenet_v2.sparq", threads=2)
    x = ((crops[100:101] / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225])
    logits = s.run(x.transpose(0, 3, 1, 2).astype(np.float32))  # (1, 1000)
    sparq.bench("mobilenet_v2.sparq", iters=50)["p50_ms"]
    sparq.eval("mobilenet_v2.sparq", crops[100:], reference="mobilenet_v2.onnx",
               mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])["top1_agreement"]

Every failure (a missing file, a malformed model, data of the wrong shape or dtype, an
unsupported operator) raises :class:`sparq.Error` with the CLI's one-line message; an unknown
keyword raises ``TypeError``.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _sparq
from ._sparq import Error

__all__ = ["compile", "Compiled", "Session", "bench", "eval", "Error", "__version__", "version"]

__version__ = _sparq.version().split(" ")[0]

PathLike = Union[str, "os.PathLike[str]"]
ArrayData = Union[np.ndarray, PathLike, Mapping[str, Union[np.ndarray, PathLike]]]


def version() -> str:
    """The package's version and the ``.sparq`` format version it writes and reads."""
    return _sparq.version()


def _npy(a: Any, what: str) -> bytes:
    """An array as ``.npy`` bytes: what the CLI reads from a ``.npy`` file."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise Error(f"{what}: arrays of dtype {a.dtype} are not data (expected numbers: uint8, int, float)")
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _data(data: Optional[ArrayData], flag: str, what: str, options: Dict[str, Any]) -> Optional[List[Tuple[str, bytes]]]:
    """Arrays (one, or one per input name) as named ``.npy`` bytes; paths become the ``flag`` option."""
    if data is None:
        return None
    if isinstance(data, (str, os.PathLike)):
        options[flag] = [os.fspath(data)]
        return None
    if isinstance(data, Mapping):
        arrays = [(str(k), v) for k, v in data.items() if not isinstance(v, (str, os.PathLike))]
        paths = [f"{k}={os.fspath(v)}" for k, v in data.items() if isinstance(v, (str, os.PathLike))]
        if arrays and paths:
            raise Error(f"{what}: give arrays or paths for every input, not a mix")
        if paths:
            options[flag] = paths
            return None
        return [(k, _npy(v, f"{what} '{k}'")) for k, v in arrays]
    return [(what, _npy(data, what))]


class Compiled:
    """A compiled model: the ``.sparq`` file's bytes (:attr:`data`) and the compile report (:attr:`report`)."""

    def __init__(self, data: bytes, report: str):
        self.data = data
        self.report = report

    def save(self, path: PathLike) -> None:
        """Write the ``.sparq`` file atomically (a temporary file renamed over ``path``)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(self.data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise Error(f"cannot write {path}: {e.strerror or e}") from None

    def session(self, threads: int = 1) -> "Session":
        """A :class:`Session` on this model, without writing it to a file."""
        return Session(self.data, threads=threads)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"<sparq.Compiled: {len(self.data)} bytes>"


def compile(model: PathLike, calib: Optional[ArrayData] = None, *, output: Optional[PathLike] = None,
            **options: Any) -> Compiled:
    """Compile an ONNX model to a ``.sparq`` model (``sparq compile``).

    ``calib``: calibration data, as the CLI reads it: a numpy array of N samples (uint8 images in
    NHWC are scaled to [0, 1], then ``mean``/``std`` applied; float arrays in the model's layout are
    taken as they are), a dict of arrays by input name for a model with several inputs, or a path
    (``.npy``, ``.npz``, a directory of images or of ``.npy`` samples).

    ``output``: also write the file there (atomically). Options, as ``sparq compile --help`` lists
    them, e.g. ``mean=[0.485, 0.456, 0.406]``, ``std=[...]``, ``quant="int8"`` or ``"f32"``,
    ``min_agreement=0.97``, ``input_dtype="u8"``, ``prune=0.5``, ``prune_pattern="2:4"``,
    ``keep_float=["node"]``, ``int16=["node"]``, ``target="rpi5"``, ``calib_limit=100``,
    ``per_layer=True``, ``report="report.html"``, ``quiet=True``.
    """
    options = dict(options)
    arrays = _data(calib, "calib", "calib", options)
    data, report = _sparq.compile(os.fspath(model), None if output is None else os.fspath(output), arrays, **options)
    return Compiled(data, report)


def bench(model: PathLike, **options: Any) -> Dict[str, Any]:
    """Time a ``.sparq`` model (``sparq bench --json``): latency percentiles in ms (``p50_ms``,
    ``p90_ms``, ``p99_ms``, ...), throughput, start-up, and with ``per_op=True`` each op's time.
    Options: ``iters``, ``warmup``, ``threads``, ``per_op``, ``baseline`` (another ``.sparq``, run
    alternately: ``speedup_median``), ``report`` (an HTML file)."""
    return json.loads(_sparq.bench(os.fspath(model), **options))


def eval(model: PathLike, data: ArrayData, labels: Optional[Union[np.ndarray, PathLike]] = None,
         **options: Any) -> Dict[str, Any]:
    """Evaluate a ``.sparq`` model (``sparq eval --json``) on ``data`` (as ``compile``'s ``calib``):
    ``accuracy`` against ``labels`` (integer classes), and with ``reference="model.onnx"`` (the float
    model, run by tract) ``top1_agreement``, ``expected_agreement``, ``sqnr_db`` and
    ``reference_accuracy``. Options: ``reference``, ``mean``, ``std``, ``layout``, ``input_value``,
    ``report`` (an HTML file)."""
    options = dict(options)
    arrays = _data(data, "data", "data", options)
    label_bytes = None
    if labels is not None:
        if isinstance(labels, (str, os.PathLike)):
            options["labels"] = os.fspath(labels)
        else:
            label_bytes = _npy(labels, "labels")
    return json.loads(_sparq.eval(os.fspath(model), arrays, label_bytes, **options))


class Session:
    """A ``.sparq`` model loaded once, with its arena: ``Session(path_or_bytes, threads=1).run(x)``.

    :attr:`inputs` and :attr:`outputs` list ``(name, dtype, shape)``. Inputs are ``float32``
    arrays in the model's shape, or ``uint8`` frames (N, H, W, C) for a model compiled with
    ``input_dtype="u8"``; a leading batch of N samples runs them one after the other.
    """

    def __init__(self, model: Union[PathLike, bytes], threads: int = 1):
        if isinstance(model, (bytes, bytearray, memoryview)):
            self._s = _sparq.Session(None, bytes(model), threads)
        else:
            self._s = _sparq.Session(os.fspath(model), None, threads)

    @property
    def inputs(self) -> List[Tuple[str, str, Tuple[int, ...]]]:
        return [(n, d, tuple(s)) for n, d, s in self._s.inputs]

    @property
    def outputs(self) -> List[Tuple[str, str, Tuple[int, ...]]]:
        return [(n, d, tuple(s)) for n, d, s in self._s.outputs]

    @property
    def kernels(self) -> str:
        """The kernel set this CPU runs (``avx512``, ``avx2``, ``neon``, ``dotprod``, ``scalar``, ...)."""
        return self._s.kernels

    @property
    def threads(self) -> int:
        return self._s.threads

    def run(self, x: Union[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray]]
            ) -> Union[np.ndarray, Dict[str, np.ndarray]]:
        """Run on ``x`` (one array, a list in input order, or a dict by input name). Returns the
        output array, or a dict of arrays by name for a model with several outputs; with a batch
        of N samples, each output has N samples. The GIL is released while the samples run, so
        sessions in other Python threads run at the same time (a session is used by the thread
        that made it)."""
        inputs = self.inputs
        if isinstance(x, Mapping):
            names = [n for n, _, _ in inputs]
            extra = [k for k in x if k not in names]
            missing = [n for n in names if n not in x]
            if extra or missing:
                raise Error(f"inputs {sorted(x)}: the model's inputs are {names}"
                            + (f" (missing {missing})" if missing else "") + (f" (no input {extra})" if extra else ""))
            arrays = [x[n] for n in names]
        elif isinstance(x, (list, tuple)):
            arrays = list(x)
        else:
            arrays = [x]
        if len(arrays) != len(inputs):
            raise Error(f"the model takes {len(inputs)} input(s) ({', '.join(n for n, _, _ in inputs)}), got {len(arrays)}")
        blobs, count = [], None
        for (name, dtype, shape), a in zip(inputs, arrays):
            a = np.asarray(a)
            want = np.dtype(dtype)
            if a.dtype.kind != want.kind or a.dtype.itemsize != want.itemsize:
                hint = " (the model takes uint8 camera frames: it was compiled with input_dtype='u8')" if dtype == "uint8" else ""
                raise Error(f"input '{name}': dtype {a.dtype}, the model takes {dtype}{hint}")
            if a.shape == shape:
                n = 1
            elif len(shape) >= 1 and shape[0] == 1 and a.ndim == len(shape) and a.shape[1:] == shape[1:]:
                n = a.shape[0]
            elif len(shape) >= 1 and shape[0] == 1 and a.shape == shape[1:]:
                n = 1
            else:
                batch = "(N, " + ", ".join(map(str, shape[1:])) + ")"
                raise Error(f"input '{name}': shape {a.shape}, the model takes {shape} (or N samples: {batch})")
            if count is not None and n != count:
                raise Error(f"input '{name}' has {n} sample(s), the first input {count}")
            count = n
            blobs.append(np.ascontiguousarray(a, dtype=want.newbyteorder("<")).tobytes())
        outs = self._s.run(blobs, count)
        result = {}
        for (name, _, shape), b in zip(self.outputs, outs):
            shape = list(shape)
            if count != 1:
                if shape and shape[0] == 1:
                    shape[0] = count
                else:
                    shape.insert(0, count)
            result[name] = np.frombuffer(b, dtype="<f4").reshape(shape)
        return next(iter(result.values())) if len(result) == 1 else result

    __call__ = run

    def __repr__(self) -> str:
        return repr(self._s)
