"""A Job is every long or risky operation (DESIGN.md §3): one row, its progress and its log."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.jobs.choices import JobStatus


class Job(models.Model):
    kind = models.CharField(max_length=64)
    vm = models.ForeignKey("vms.VirtualMachine", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    host = models.ForeignKey("hosts.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # What the job created so far (volumes, a domain): written as it goes, so a cleanup can undo it
    # even when the worker that ran the job died.
    state = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    percent = models.PositiveSmallIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    phase = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker_hostname = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["vm"],
                condition=Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]) & Q(vm__isnull=False),
                name="jobs_one_active_job_per_vm",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"

    @property
    def target(self):
        return self.vm if self.vm_id else self.host


class JobLogLine(models.Model):
    """One line of a job's log: appending is an insert, never a rewrite of the whole log."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField(auto_now_add=True)
    line = models.TextField()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.line[:80]
