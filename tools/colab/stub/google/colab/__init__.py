"""A stand-in for the ``google.colab`` module that a Colab runtime imports at start-up.

The Colab check (``tests/test_colab.py``) puts this folder on the kernel's ``PYTHONPATH`` and imports it when the
kernel starts, so ``"google.colab" in sys.modules`` holds as it does on Colab and the chapters' install cells run.
Nothing in the book uses its contents.
"""
