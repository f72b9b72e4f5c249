"""`jobsight generate`: dashboards, alert rules, the metrics and settings references, the chart's
values schema. The only part of jobsight that imports jobsight.dashboards and jobsight.alerts."""
