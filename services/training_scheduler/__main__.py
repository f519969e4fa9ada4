from libs.kit.serve import main
from services.training_scheduler.app import create_app
from services.training_scheduler.settings import TrainingSchedulerSettings

main("training-scheduler", TrainingSchedulerSettings, create_app)
