"""What the worker and `starter/` both stand on: the Temporal connection (`temporal`),
logging (`logs`), shutdown signals (`shutdown`), the payload codec (`codec`) and its
data keys (`keys`)."""
