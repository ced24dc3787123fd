"""Gorilla APIBench rows as the published `*_eval.json` files hold them (HuggingFace, TorchHub,
TensorFlow Hub), and answers to them in Gorilla's format: the reference, a real but wrong API,
an invented model name. `TORCH_POSITIONAL` is the TorchHub style (about 1 row in 10) whose reference
call passes a positional argument after keyword arguments: valid for tree-sitter, not for Python."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HF_CALL = "pipeline('sentiment-analysis', model='distilbert-base-uncased-finetuned-sst-2-english')"
HF_NER_CALL = "pipeline('ner', model='dslim/bert-base-NER')"
TORCH_CALL = "torch.hub.load(repo_or_dir='pytorch/vision', model='resnet18', pretrained=True)"
TORCH_POSITIONAL_CALL = "torch.hub.load(repo_or_dir='datvuthanh/hybridnets', 'hybridnets', pretrained=True)"
TF_CALL = "hub.KerasLayer('https://tfhub.dev/google/imagenet/mobilenet_v2_130_224/classification/5')"


def output(domain: str, call: str, provider: str, code: str) -> str:
    """A Gorilla `###Output:` answer."""
    return (
        f"<<<domain>>>: {domain}\n<<<api_call>>>: {call}\n<<<api_provider>>>: {provider}\n"
        f"<<<explanation>>>: 1. Import the library. 2. Load the pretrained model.\n<<<code>>>: {code}"
    )


HF_CODE = (
    f"from transformers import pipeline\nclassifier = {HF_CALL}\nresult = classifier('I love this movie!')"
)
TORCH_CODE = f"import torch\nmodel = {TORCH_CALL}\nmodel.eval()"
TORCH_POSITIONAL_CODE = f"import torch\nmodel = {TORCH_POSITIONAL_CALL}"
TF_CODE = f"import tensorflow as tf\nimport tensorflow_hub as hub\nmodel = tf.keras.Sequential([{TF_CALL}])"

HF_ROW: dict[str, Any] = {
    "code": "###Instruction: Our app should tell whether a movie review is positive or negative.\n###Output: "
    + output(
        "Natural Language Processing Text Classification", HF_CALL, "Hugging Face Transformers", HF_CODE
    ),
    "api_call": HF_CALL,
    "provider": "Hugging Face Transformers",
    "api_data": {
        "domain": "Natural Language Processing Text Classification",
        "framework": "Hugging Face Transformers",
        "functionality": "Sentiment analysis",
        "api_name": "distilbert-base-uncased-finetuned-sst-2-english",
        "api_call": HF_CALL,
        "api_arguments": ["text"],
        "python_environment_requirements": ["transformers"],
    },
}
TORCH_ROW: dict[str, Any] = {
    "code": "###Instruction: Classify photos of animals into the 1000 ImageNet categories.\n###Output: "
    + output("Classification", TORCH_CALL, "PyTorch", TORCH_CODE),
    "api_call": TORCH_CALL,
    "provider": "PyTorch",
    "api_data": {
        "domain": "Classification",
        "framework": "PyTorch",
        "functionality": "Image Recognition",
        "api_name": "resnet18",
        "api_call": TORCH_CALL,
        "api_arguments": {"repo_or_dir": "pytorch/vision", "model": "resnet18", "pretrained": "True"},
        "python_environment_requirements": {"torch": ">=1.0"},
    },
}
TORCH_POSITIONAL_ROW: dict[str, Any] = {
    "code": "###Instruction: Detect vehicles and drivable areas in dashcam frames.\n###Output: "
    + output("Object Detection", TORCH_POSITIONAL_CALL, "PyTorch", TORCH_POSITIONAL_CODE),
    "api_call": TORCH_POSITIONAL_CALL,
    "provider": "PyTorch",
    "api_data": {
        "domain": "Object Detection",
        "framework": "PyTorch",
        "functionality": "Traffic Object Detection, Drivable Area Segmentation, Lane Detection",
        "api_name": "HybridNets",
        "api_call": TORCH_POSITIONAL_CALL,
        "api_arguments": "repo_or_dir, model, pretrained",
        "python_environment_requirements": "Python>=3.7, PyTorch>=1.10",
    },
}
TF_ROW: dict[str, Any] = {
    "code": "###Instruction: Identify the species of a plant from a photo.\n###Output: "
    + output("Image classification", TF_CALL, "TensorFlow Hub", TF_CODE),
    "api_call": TF_CALL,
    "provider": "TensorFlow Hub",
    "api_data": {
        "domain": "Image classification",
        "framework": "TensorFlow Hub",
        "functionality": "Image classification",
        "api_name": "imagenet/mobilenet_v2_130_224/classification",
        "api_call": TF_CALL,
        "api_arguments": {
            "handle": "https://tfhub.dev/google/imagenet/mobilenet_v2_130_224/classification/5"
        },
        "python_environment_requirements": {"tensorflow": ">=2.0", "tensorflow_hub": ">=0.6"},
    },
}
ROWS = [HF_ROW, TORCH_ROW, TORCH_POSITIONAL_ROW, TF_ROW]  # task ids "1".."4"
NER_ROW: dict[str, Any] = {
    **HF_ROW,
    "api_call": HF_NER_CALL,
    "api_data": {**HF_ROW["api_data"], "api_call": HF_NER_CALL},
}

# Answers to the HF question (task "1"):
HF_WRONG_API = output(
    "NLP", HF_NER_CALL, "Hugging Face Transformers", f"from transformers import pipeline\nner = {HF_NER_CALL}"
)
HF_INVENTED = output(
    "NLP",
    "pipeline('sentiment-analysis', model='gorilla/imaginary-sentiment-xl')",
    "Hugging Face Transformers",
    "from transformers import pipeline\nclassifier = pipeline('sentiment-analysis', model='gorilla/imaginary-sentiment-xl')",
)


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def reference_answer(row: Mapping[str, Any]) -> str:
    """The `###Output:` part of a row: Gorilla's own reference answer."""
    return str(row["code"]).split("###Output:", 1)[1].strip()
