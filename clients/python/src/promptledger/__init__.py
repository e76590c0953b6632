"""promptledger's Python client: prompts by name and label, served from memory and kept
fresh by the server's event stream; strict local rendering; background generations."""

from .client import Client, Generation, LockDriftError, Prompt, PromptledgerError, RenderError, Unavailable

__all__ = ["Client", "Generation", "LockDriftError", "Prompt", "PromptledgerError", "RenderError", "Unavailable"]
__version__ = "0.1.0"
