"""The 差评 closed loop (闭环, issue 10): 核实 → 整改 → 回访 → 办结, with 复核/申诉, 延期, 退回,
督办 and reopening, every step on the working-day calendar, audited and announced by webhook.

- ``machine``: the pure state machine of one item (data in, decisions out);
- ``deadlines``: due dates on the official calendar (``hotline.workdays``);
- ``store``: the database adapter; ``service``: the functions HTTP and CLI share;
- ``hook``: opening or joining an item where a rating is saved;
- ``webhooks``: the signed event outbox and its sender.
"""
