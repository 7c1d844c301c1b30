from torchvision.transforms import v2

transform = v2.Compose(
    [
        v2.RandomResizedCrop(28, scale=(0.7, 1.0), ratio=(0.85, 1.18), antialias=True),
        v2.RandAugment(interpolation=v2.InterpolationMode.BILINEAR),
    ]
)
