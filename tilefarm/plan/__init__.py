"""What a job renders, decided in pure Python: scene facts, job settings, the planner,
tile geometry, the plan and task manifests with their schemas, and where each file lives."""
