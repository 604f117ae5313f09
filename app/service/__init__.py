"""The service layer: async functions over the registry that return pydantic models.

Both the JSON API (app/api) and the HTML pages call these; nothing here knows about
routers or requests.
"""
