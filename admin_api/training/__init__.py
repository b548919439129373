"""Designers' own training data per shop (issue 15): drafts in Rasa's YAML formats stored per
shop (`drafts`), the base data every shop shares (`base`) and the checks a draft set must pass
before it can train (`checks`). Training, model versions and the bot runtime come later."""
