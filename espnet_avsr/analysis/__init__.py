"""Analyses that run trained models (above ``tasks/``): what ``eval/`` may not do."""
