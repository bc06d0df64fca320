"""``momentopt bench``: momentopt's default step against torch.optim's paths, same process."""
