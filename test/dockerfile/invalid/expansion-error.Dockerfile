ARG X
FROM ${X:?is_required}
