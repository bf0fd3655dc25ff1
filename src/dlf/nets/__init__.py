"""Plain nn.Modules: how to compute. Each concept has a torch.nn version and a from-scratch twin side by side."""
