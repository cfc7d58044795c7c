# Shortcuts for people who have make; dev.py does the work (and needs only Python).
.PHONY: up test
up:
	python3 dev.py up
test:
	python3 dev.py test
