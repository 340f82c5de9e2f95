"""What the gateway (`starter/api/`) and the CLI (`starter/cli/`) both do.

Contact and journey operations, event intake, access-request export, the
funnel report and inbound SMS keywords: one implementation behind both.
"""
