"""Upload a trained model folder to the Hugging Face Hub (``huggingface_hub.HfApi``).

The folder is uploaded as it is (model, processor, card, curves, logs, resolved recipe), without the
resumable checkpoints and temporary folders under ``checkpoints/``.
"""

from __future__ import annotations

from pathlib import Path

from vl_hub.training.checkpointing import CHECKPOINTS_DIR

#: glob patterns (``huggingface_hub`` semantics) left out of an upload.
UPLOAD_IGNORE_PATTERNS: list[str] = [f"{CHECKPOINTS_DIR}/*", f"{CHECKPOINTS_DIR}/**", "*.tmp", "**/.tmp-*"]


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    commit_message: str = "Upload vl_hub model",
    token: str | None = None,
) -> str:
    """Creates ``repo_id`` (if needed) and uploads ``folder`` to it; returns the commit URL.

    Args:
        folder: the trained model folder (``output_dir``).
        repo_id: ``"user/name"``.
        private: create the repo as private.
        commit_message: message of the upload commit.
        token: Hub token; the logged-in one (``huggingface-cli login`` / ``HF_TOKEN``) when ``None``.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot push {folder}: not a folder")
    api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=str(folder),
        commit_message=commit_message,
        ignore_patterns=UPLOAD_IGNORE_PATTERNS,
    )
    return str(getattr(info, "commit_url", info))
