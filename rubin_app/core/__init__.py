"""The bottom layer: error codes and their HTTP/OpenAI/i18n mapping, the outbound-request guard, waiting."""
