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

#: file-name suffixes of the image formats Pillow decodes here (folders, file dialogs)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".gif", ".bmp", ".tif", ".tiff",
                            ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".avif"})

#: share of a map's mass whose region (the fewest patches holding it) outlines what a head
#: attends to, the foreground of a rollout mask and a head's "area" (Caron et al. 2021, DINO:
#: "we keep 60% of the mass")
MASS_SHARE = 0.6
#: px: the long side of the copy of a photo that the window shows and the head tables of the
#: window and of ``heads`` are measured on (features, masks and GrabCut need no more; a
#: 24 MP photo at full size cost seconds of integral images and a GB of memory)
DISPLAY_SIDE = 1600
#: opacity of a map over its image, everywhere a default is needed (screen, CLI, figures)
DEFAULT_OPACITY = 0.6
#: colormap of the maps unless the user picks another (core.render.COLORMAPS lists them)
DEFAULT_CMAP = "viridis"  # perceptually uniform: reads in greyscale and for colour-blind readers

#: how the heads of a block are fused into one matrix for the rollouts (core.rollout)
FUSIONS = ("mean", "max", "min")
#: where a foreground mask comes from when there is no mask file (core.masks)
MASK_MODES = ("centre", "rollout", "grabcut")


def resize_model_kwargs(policy: str) -> dict:
    """What :func:`~vitexplorer.core.models.load_model` needs for ``policy``: ``native``
    a model whose token grid follows each input (timm's ``dynamic_img_size``). Here, not
    beside the checks: the window builds its models with it and must start without torch."""
    return {"dynamic_img_size": True} if policy == "native" else {}


#: figure formats written by core.figures
FORMATS = ("png", "svg", "pdf")

#: frame / legend colour of each head group (core.heads defines the groups)
GROUP_COLOURS = {
    "foreground": "#e6194b", "background": "#4363d8", "edge": "#f58231",
    "texture": "#3cb44b", "colour": "#911eb4", "local": "#42d4f4", "global": "#f032e6",
    "sink": "#808000", "none": "#9e9e9e",
}
#: the label axes of a head table, and the label of each that says "nothing strong"
AXES = ("fg_bg", "edge_texture", "colour", "range")
NULL_LABELS = {"fg_bg": "mixed", "edge_texture": "neither", "colour": "none",
               "range": "uniform"}
NULL_SET = {"mixed", "neither", "none", "uniform", "mid"}
