"""Rule templates a user starts from (the editor pre-fills its form with one; blanks such
as user ids and stages are the user's to fill in before saving)."""

from __future__ import annotations

TEMPLATES = [
    {"key": "assign_new_leads", "name": "Assign new leads", "entity": "lead",
     "description": "Give every new lead without an owner to the next person of the team, and a first call task.",
     "trigger": {"type": "record_created", "options": {}},
     "conditions": {"all": [{"field": "owner_id", "op": "is_empty"}]},
     "steps": [{"action": "assign_owner", "params": {"user_ids": [], "only_if_unassigned": True}},
               {"action": "create_task", "params": {"title": "First call: {name}", "due_in_days": 1}}]},
    {"key": "hot_lead", "name": "Hot lead: notify the owner and create a call task", "entity": "lead",
     "description": "When a lead's score crosses 80 (scoring plugin), tell its owner and plan a call.",
     "trigger": {"type": "lead_score_crossed", "options": {"threshold": 80}},
     "conditions": {},
     "steps": [{"action": "notify", "params": {"title": "{name} is hot", "text": "The score crossed 80.", "to_owner": True}},
               {"action": "create_task", "params": {"title": "Call {name}", "due_in_days": 0}}]},
    {"key": "proposal_follow_up", "name": "Proposal follow-up", "entity": "deal",
     "description": "Three days after a deal reaches the proposal stage, remind its owner to follow up.",
     "trigger": {"type": "deal_stage_changed", "options": {"to_stage_id": None}},
     "conditions": {},
     "steps": [{"action": "wait", "params": {"days": 3}},
               {"action": "create_task", "params": {"title": "Follow up on the proposal: {name}", "due_in_days": 0}}]},
    {"key": "stale_deal", "name": "Stale deal alert", "entity": "deal",
     "description": "No activity on a deal for 14 days: tell its owner (add a stage condition to watch one stage).",
     "trigger": {"type": "inactive", "options": {"days": 14}},
     "conditions": {"all": [{"field": "closed_at", "op": "is_empty"}]},
     "steps": [{"action": "notify", "params": {"title": "{name} has been quiet for 14 days", "to_owner": True}},
               {"action": "create_task", "params": {"title": "Revive {name}", "due_in_days": 1}}]},
    {"key": "onboarding_on_won", "name": "Onboarding when a deal is won", "entity": "deal",
     "description": "A kick-off task at once, a check-in a week later.",
     "trigger": {"type": "deal_stage_changed", "options": {"to_stage_id": None}},
     "conditions": {},
     "steps": [{"action": "add_tag", "params": {"tag": "onboarding"}},
               {"action": "create_task", "params": {"title": "Kick-off call: {name}", "due_in_days": 1}},
               {"action": "wait", "params": {"days": 7}},
               {"action": "create_task", "params": {"title": "Onboarding check-in: {name}", "due_in_days": 0}}]},
]
