"""The FCA support-agent example: `python -m examples.fca_support_agent`."""

from examples.fca_support_agent.app import (
    MessageService,
    SupportAgent,
    factory,
    main,
    make_coordinator,
    message_hooks,
)

__all__ = [
    "MessageService",
    "SupportAgent",
    "factory",
    "main",
    "make_coordinator",
    "message_hooks",
]
