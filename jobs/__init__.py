"""Thin Ray entrypoints over the ser library (infer, tune, sweep, run, submit, bench)."""

from .ray_env import keep_local_ray_on_loopback

keep_local_ray_on_loopback()     # before anything imports ray: Ray reads the setting when it is imported
