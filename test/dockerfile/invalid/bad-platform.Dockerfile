FROM --platform=linux alpine
