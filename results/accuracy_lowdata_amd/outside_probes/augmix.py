from torchvision.transforms import v2

transform = v2.AugMix()
