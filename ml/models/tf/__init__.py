"""TensorFlow models (Keras 3): two-tower retrieval and a DIN-style ranker.

Plain pandas/numpy in and out; the caller never builds tensors. Modules, one job each:

- ``device``    — pick GPU/CPU at run time: mixed precision + ``tf.distribute`` on GPU, determinism on CPU.
- ``parsing``   — the dbt marts' text columns (comma id lists, space-separated query terms) as lists, tokens.
- ``features``  — vocabularies with an OOV bucket, numeric scaling, ``Encoders`` (lists → padded index arrays).
- ``sequences`` — next-item examples and per-user contexts from raw events (twin of ``fct_session_intent``).
- ``layers``    — the few custom Keras layers (masked pooling, DIN target attention, in-batch logits).
- ``two_tower`` — ``fit_two_tower`` / ``TwoTower.retrieve`` (in-batch softmax, optional logQ).
- ``ranker``    — ``fit_ranker`` / ``Ranker.score`` (target attention over the behaviour sequence), with
  ``ranker_config`` (``RankerConfig``), ``ranker_inputs`` (rows → arrays, ``attach_context``) and
  ``ranker_network`` (the Keras model).
- ``persist``   — log to and load from MLflow (``mlflow.tensorflow``), vocabularies travel with the model.

Nothing is imported here on purpose: ``import ml.models.tf`` stays cheap; import the submodule you need.
"""
