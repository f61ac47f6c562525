"""The job framework's own kinds: none. Each app registers its kinds in its own `job_kinds.py`
(volume.create lives in apps/storage/job_kinds.py).

`validate_volume_name` and `VOLUME_FORMATS` moved to apps/storage/validators.py; they are
re-exported here for code that still imports them from this module.
"""

from apps.storage.validators import VOLUME_FORMATS, validate_volume_name

__all__ = ["VOLUME_FORMATS", "validate_volume_name"]
