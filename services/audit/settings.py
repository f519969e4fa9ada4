from libs.kit.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    port: int = 8182
