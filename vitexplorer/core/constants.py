"""Names shared by the core, the CLI and the GUI, importable without torch (fast GUI start)."""

DEFAULT_MODEL = "vit_small_patch16_224.dino"

METHODS = ("head", "head-rollout", "rollout", "grad-rollout", "relevance")
METHOD_LABELS = {
    "head": "head attention",
    "head-rollout": "per-head rollout",
    "rollout": "attention rollout",
    "grad-rollout": "gradient rollout",
    "relevance": "relevance (Chefer)",
}
#: methods with one map per (layer, head)
PER_HEAD_METHODS = ("head", "head-rollout")
#: methods that need the gradient of a class score (a forward + backward)
CLASS_METHODS = ("grad-rollout", "relevance")

#: figure formats written by core.figures
FORMATS = ("png", "svg", "pdf")
