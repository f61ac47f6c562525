from django.contrib import admin

from apps.jobs.models import Job, JobLogLine


class JobLogLineInline(admin.TabularInline):
    model = JobLogLine
    extra = 0
    readonly_fields = ["at", "line"]
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "percent", "vm", "host", "requested_by", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [field.name for field in Job._meta.fields]
    inlines = [JobLogLineInline]
