"""SASRec, a sequential next-purchase model (extra ``[deep]``), and what the ranker takes from it.

``history`` turns order lines into per-customer product sequences (no torch),
``metrics`` scores next-purchase rankings leave-last-basket-out against
popularity and buy-again (no torch), ``sasrec`` is the PyTorch model, its
training and its storage (imported only when :func:`metro_assets.deep.deep_status`
says PyTorch runs), ``scores`` turns a stored model into the ranker's
``next_purchase_log_prob`` feature for any (customer, offer, day) requests.
See docs/RETRIEVAL.md, section SASRec.
"""
