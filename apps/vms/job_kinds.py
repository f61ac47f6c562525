"""The VM job kinds register themselves when their modules are imported (apps/jobs/registry.py)."""
