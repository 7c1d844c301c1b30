"""Augmentation policy '0005', exported by autoaug 0.1.0.

Needs only torch and torchvision. `transform` is a drop-in for torchvision's
TrivialAugmentWide / RandAugment / AutoAugment: it returns what it is given (a uint8
tensor uint8, a float tensor in [0, 1] float, a PIL image PIL, a tv_tensors.Image an
Image; C×H×W, or a batch …×C×H×W that gets one draw), and goes where they go:

    from this_module import transform
    train_tf = v2.Compose([v2.RandomCrop(28, padding=4), v2.RandomHorizontalFlip(), transform,
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])

Stages: each picks one op (RandomChoice), applies it with its probability (RandomApply),
at a magnitude drawn from the policy's histogram (RandomChoice over fixed values), on
the image as float32 in [0, 1] (KeepInputType converts it there and back).
Built for images of 28×28 pixels (translations in pixels).
"""

import warnings

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


class KeepInputType(v2.Transform):
    """Runs ``inner`` on the image as float32 in [0, 1] and returns it in the type it came in.

    uint8 (any integer) tensor in, the same dtype out, rounded to the nearest level; float in,
    float out (its dtype); PIL in (mode L, RGB, LA or RGBA), PIL out, the alpha channel moved by
    the geometric ops (as a mask is) and left alone by the others; ``tv_tensors.Image``/``Video``
    keep their type. Other tv_tensors (masks, boxes) and non-image values pass through, as in
    torchvision's AutoAugment. A batch (…×C×H×W) is one draw for all its images.
    """

    image_types = (tv_tensors.Image, tv_tensors.Video)

    def __init__(self, inner: v2.Transform) -> None:
        super().__init__()
        self.inner = inner

    def transform(self, inpt: object, params: dict) -> object:
        if isinstance(inpt, tv_tensors.TVTensor) and not isinstance(inpt, self.image_types):
            return inpt  # a mask, boxes: not an image
        if not isinstance(inpt, torch.Tensor):  # a PIL image
            if inpt.mode in ("LA", "RGBA"):  # the alpha channel moves with the geometric ops only
                x = F.pil_to_tensor(inpt)
                with warnings.catch_warnings():  # erasing says it leaves a mask alone: as meant here
                    warnings.filterwarnings(
                        "ignore", message=".*passing through inputs of type tv_tensors.Mask"
                    )
                    out, alpha = self.inner(
                        tv_tensors.Image(x[:-1].to(torch.float32) / 255), tv_tensors.Mask(x[-1:])
                    )
                out = (out.as_subclass(torch.Tensor) * 255).round().clamp(0, 255).to(torch.uint8)
                return F.to_pil_image(torch.cat([out, alpha.as_subclass(torch.Tensor)]), mode=inpt.mode)
            if inpt.mode not in ("L", "RGB"):
                raise ValueError(
                    f"expected a PIL image in mode 'L', 'RGB', 'LA' or 'RGBA', got mode {inpt.mode!r}"
                )
            return F.to_pil_image(self.transform(F.pil_to_tensor(inpt), params), mode=inpt.mode)
        x = inpt.as_subclass(torch.Tensor)
        if x.is_floating_point():
            out = self.inner(x.to(torch.float32)).to(x.dtype)
        else:
            top = torch.iinfo(x.dtype).max
            out = (self.inner(x.to(torch.float32) / top) * top).round().clamp(0, top).to(x.dtype)
        out = out.as_subclass(torch.Tensor)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out

    _transform = transform  # the name torchvision < 0.21 calls


# The policy's stages, on float32 images in [0, 1]:
# fmt: off
transform = v2.Compose(transforms=[
    v2.RandomApply(transforms=[
        v2.RandomHorizontalFlip(p=1.0),
    ], p=0.2),
    v2.RandomApply(transforms=[
        v2.RandomHorizontalFlip(p=1.0),
    ], p=0.2),
    v2.RandomApply(transforms=[
        v2.RandomHorizontalFlip(p=1.0),
    ], p=0.2),
])
# fmt: on
# ... taking and returning uint8, float, PIL and tv_tensors images alike:
transform = KeepInputType(transform)
