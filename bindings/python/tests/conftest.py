import os
import sys

# Import the package from this source tree (PYTHONPATH may say the same).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
