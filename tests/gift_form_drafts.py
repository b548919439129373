"""A draft as the walkthrough's designer wrote it: a form that asks for the rider's height
(its utter_ask_rider_height said by the form, no rule), and an intent a gap brought in before
any rule answers it. Validated by tests/admin_api (through the admin API) and tests/bot
(against the workshop itself)."""

GIFT_DOMAIN = """version: "3.1"
intents:
  - ask_height_help
  - ask_gift_wrap
entities:
  - bike_height
slots:
  rider_height:
    type: text
    mappings:
      - type: from_entity
        entity: bike_height
forms:
  height_form:
    required_slots:
      - rider_height
responses:
  utter_ask_rider_height:
    - text: "How tall is the rider?"
  utter_height_done:
    - text: "Thanks, I will pick the frame for that height."
"""
GIFT_NLU = """version: "3.1"
nlu:
  - intent: ask_height_help
    examples: |
      - which frame for my height
      - I am [180 cm](bike_height), which size
      - help me pick a size for my height
  - intent: ask_gift_wrap
    examples: |
      - can you gift wrap it
      - do you wrap presents
"""
GIFT_RULES = """version: "3.1"
rules:
  - rule: height help starts the form
    steps:
      - intent: ask_height_help
      - action: height_form
      - active_loop: height_form
  - rule: the form is done
    condition:
      - active_loop: height_form
    steps:
      - action: height_form
      - active_loop: null
      - slot_was_set:
          - requested_slot: null
      - action: utter_height_done
"""
