"""Interface strings in English and Russian. A new language is one more dict with the same keys."""

from __future__ import annotations

LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"

EN: dict[str, str] = {
    "app_name": "Rubin AI",
    "new_chat": "New chat",
    "search_chats": "Filter chats by title",
    "no_chats": "No chats yet",
    "rename": "Rename",
    "delete": "Delete",
    "cancel": "Cancel",
    "save": "Save",
    "delete_title": "Delete this chat?",
    "delete_body": "The chat and all its messages will be deleted for good.",
    "rename_title": "Rename chat",
    "placeholder": "Message Rubin…  (Enter to send, Shift+Enter for a new line)",
    "send": "Send",
    "stop": "Stop",
    "regenerate": "Regenerate",
    "retry": "Retry",
    "edit": "Edit",
    "edit_title": "Edit message",
    "edit_send": "Save and resend",
    "copy": "Copy",
    "copied": "Copied",
    "model": "Model",
    "refresh_models": "Refresh the model list",
    "thinking": "Reasoning",
    "welcome_title": "How can I help?",
    "welcome_body": "Ask anything. Answers come from the models of your own LocalAI server.",
    "generating": "Generating…",
    "menu": "Chats",
    "language": "Language",
    "theme": "Toggle theme",
    "status_interrupted": "Interrupted",
    "status_error": "Failed",
    "err_stopped": "You stopped this answer.",
    "err_shutdown": "The server stopped while answering.",
    "err_restarted": "The server restarted while answering.",
    "err_unreachable": "Cannot reach LocalAI. Is it running, and is LOCALAI_URL right?",
    "err_timeout": "LocalAI took too long to answer.",
    "err_overloaded": "LocalAI is overloaded (busy). Try again in a moment.",
    "err_auth": "LocalAI refused the API key. Check LOCALAI_API_KEY.",
    "err_not_found": "LocalAI does not serve this model.",
    "err_bad_request": "LocalAI rejected the request.",
    "err_server": "LocalAI failed with a server error.",
    "err_upstream": "LocalAI reported an error while answering.",
    "err_dropped": "The connection to LocalAI was lost mid-answer.",
    "err_malformed": "LocalAI sent a reply Rubin cannot read.",
    "err_internal": "Something went wrong in Rubin while answering.",
    "err_empty_message": "Type a message first.",
    "err_message_too_long": "The message is too long: {length} characters, the limit is {limit}.",
    "err_unknown_model": "The model “{model}” is not available on LocalAI. Pick another one.",
    "err_no_model": "LocalAI offers no model right now. Check the server and refresh the list.",
    "err_conversation_not_found": "This chat does not exist (or is not yours).",
    "err_nothing_to_regenerate": "There is no question to answer again.",
    "err_only_last_editable": "Only the last message can be edited.",
    "err_empty_title": "A title cannot be empty.",
    "err_busy": "Wait for the current answer to finish, or stop it.",
    "models_unavailable": "Model list unavailable",
    "not_found_title": "Chat not found",
    "stats_tokens": "tok",
}

RU: dict[str, str] = {
    "app_name": "Rubin AI",
    "new_chat": "Новый чат",
    "search_chats": "Фильтр чатов по названию",
    "no_chats": "Чатов пока нет",
    "rename": "Переименовать",
    "delete": "Удалить",
    "cancel": "Отмена",
    "save": "Сохранить",
    "delete_title": "Удалить этот чат?",
    "delete_body": "Чат и все его сообщения будут удалены безвозвратно.",
    "rename_title": "Переименовать чат",
    "placeholder": "Сообщение для Rubin…  (Enter — отправить, Shift+Enter — новая строка)",
    "send": "Отправить",
    "stop": "Стоп",
    "regenerate": "Ответить заново",
    "retry": "Повторить",
    "edit": "Изменить",
    "edit_title": "Изменить сообщение",
    "edit_send": "Сохранить и отправить",
    "copy": "Копировать",
    "copied": "Скопировано",
    "model": "Модель",
    "refresh_models": "Обновить список моделей",
    "thinking": "Рассуждение",
    "welcome_title": "Чем помочь?",
    "welcome_body": "Спрашивайте что угодно. Отвечают модели вашего собственного сервера LocalAI.",
    "generating": "Генерация…",
    "menu": "Чаты",
    "language": "Язык",
    "theme": "Сменить тему",
    "status_interrupted": "Прервано",
    "status_error": "Ошибка",
    "err_stopped": "Вы остановили этот ответ.",
    "err_shutdown": "Сервер остановился во время ответа.",
    "err_restarted": "Сервер перезапустился во время ответа.",
    "err_unreachable": "Нет связи с LocalAI. Запущен ли он и верен ли LOCALAI_URL?",
    "err_timeout": "LocalAI отвечает слишком долго.",
    "err_overloaded": "LocalAI перегружен. Повторите чуть позже.",
    "err_auth": "LocalAI не принял ключ API. Проверьте LOCALAI_API_KEY.",
    "err_not_found": "LocalAI не обслуживает эту модель.",
    "err_bad_request": "LocalAI отклонил запрос.",
    "err_server": "Внутренняя ошибка сервера LocalAI.",
    "err_upstream": "LocalAI сообщил об ошибке во время ответа.",
    "err_dropped": "Соединение с LocalAI оборвалось посреди ответа.",
    "err_malformed": "LocalAI прислал ответ, который Rubin не может прочитать.",
    "err_internal": "Во время ответа в Rubin что-то пошло не так.",
    "err_empty_message": "Сначала введите сообщение.",
    "err_message_too_long": "Сообщение слишком длинное: {length} символов, предел — {limit}.",
    "err_unknown_model": "Модель «{model}» недоступна в LocalAI. Выберите другую.",
    "err_no_model": "LocalAI сейчас не предлагает ни одной модели. Проверьте сервер и обновите список.",
    "err_conversation_not_found": "Такого чата нет (или он не ваш).",
    "err_nothing_to_regenerate": "Нет вопроса, на который можно ответить заново.",
    "err_only_last_editable": "Изменить можно только последнее сообщение.",
    "err_empty_title": "Название не может быть пустым.",
    "err_busy": "Дождитесь конца текущего ответа или остановите его.",
    "models_unavailable": "Список моделей недоступен",
    "not_found_title": "Чат не найден",
    "stats_tokens": "ток.",
}

CATALOGS: dict[str, dict[str, str]] = {"en": EN, "ru": RU}


def pick_language(accept_language: str) -> str:
    """The best supported language for an Accept-Language header / navigator.language."""
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in CATALOGS:
            return code
    return DEFAULT_LANGUAGE


def t(key: str, lang: str = DEFAULT_LANGUAGE, **params: object) -> str:
    """Translate a key; unknown keys fall back to English, then to the key itself."""
    text = CATALOGS.get(lang, EN).get(key) or EN.get(key) or key
    return text.format(**params) if params else text
