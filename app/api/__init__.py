"""The merchant REST API under /api/v1: one blueprint per module."""

from app.api import checkout, members, programs

blueprints = [programs.bp, members.bp, checkout.bp]
