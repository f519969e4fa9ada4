from libs.kit.serve import main
from services.evaluation.app import create_app
from services.evaluation.settings import EvaluationSettings

main("evaluation", EvaluationSettings, create_app)
