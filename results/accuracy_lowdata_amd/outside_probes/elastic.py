from torchvision.transforms import v2

transform = v2.RandomApply([v2.ElasticTransform(alpha=68.0, sigma=4.0)], p=0.5)
