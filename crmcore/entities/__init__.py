"""The shared CRM entities: leads, contacts, companies, pipelines and stages, deals,
activities, notes, tasks, tags, custom fields and the audit trail.

They live in the core because every feature plugin builds on them; plugins add tables
of their own and may add fields (custom fields, or a migration of their own).
"""
