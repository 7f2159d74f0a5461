"""The tutorial's client code (d2l, "Dropout"), run as written with pydrop as the framework.

Run it with the data directory in PYDROP_DATA (or ~/.cache/pydrop/fashion-mnist):
PYDROP_DATA=/path/to/fashion-mnist python examples/tutorial.py
"""

import pydrop

# The tutorial's lines, verbatim:
# fmt: off
hparams = {'num_outputs': 10, 'num_hiddens_1': 256, 'num_hiddens_2': 256,
           'dropout_1': 0.5, 'dropout_2': 0.5, 'lr': 0.1}
model = pydrop.DropoutMLPScratch(**hparams)
data = pydrop.FashionMNIST(batch_size=256)
trainer = pydrop.Trainer(max_epochs=10)
trainer.fit(model, data)
# fmt: on
print("DropoutMLPScratch:", trainer.history.last())
model = pydrop.DropoutMLP(**hparams)
trainer.fit(model, data)
print("DropoutMLP:", trainer.history.last())
